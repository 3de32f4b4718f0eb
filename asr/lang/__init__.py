"""asr.lang"""
