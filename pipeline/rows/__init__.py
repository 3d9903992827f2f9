"""Ranker input rows: filtered candidates joined with every signal and passed through the saved
feature workflow, the same code for training rows (labelled from a window) and for serving."""
