"""Stages 1 and 2: retrieve candidate items per user from several generators (popularity,
co-occurrence, repeat, embeddings), each fitted as of a cutoff, then filter them (the seen rule
and the business rules)."""
