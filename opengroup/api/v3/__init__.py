"""The community API ("v3"), spoken by every Session client since 2022: its routes
(``routes.py``), its router (``routing.py``) and one module of handlers per
capability."""
