"""The synthetic corpus: flite, prompts from an n-gram, perturbed voices, TIMIT- and LibriSpeech-layout writers."""
