"""Phone sets and the phone side of a lang dir: the lowest domain layer."""
