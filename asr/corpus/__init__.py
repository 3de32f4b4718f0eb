"""asr.corpus"""
