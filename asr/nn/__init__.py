"""asr.nn"""
