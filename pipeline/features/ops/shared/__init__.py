"""Building blocks that several ops share: base classes, input checks, list-column codecs."""
