"""asr.hmm"""
