"""Recipe steps: whole-stage operations the recipes call through the CLI."""
