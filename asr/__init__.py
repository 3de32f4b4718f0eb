"""asr: a hybrid LSTM-HMM speech recognition toolkit."""

__version__ = "0.1.0"
