"""The domain: the rules of an open group (who may do what, limits, ids), free of HTTP."""
