"""Per-request batching of every relation (aiodataloader), over plain SQLAlchemy Core rows."""

from loaders.loaders import Loaders
from loaders.pages import Page, PageArgs
from loaders.session import RequestDb

__all__ = ["Loaders", "Page", "PageArgs", "RequestDb"]
