"""asr.score"""
