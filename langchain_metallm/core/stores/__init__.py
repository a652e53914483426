"""Where the router's learned statistics live: memory, SQLite or Redis."""

from langchain_metallm.core.stores.base import PolicyStore, Statistics, namespace
from langchain_metallm.core.stores.memory import MemoryStore
from langchain_metallm.core.stores.redis import RedisStore
from langchain_metallm.core.stores.sqlite import SQLiteStore

__all__ = [
    "MemoryStore",
    "PolicyStore",
    "RedisStore",
    "SQLiteStore",
    "Statistics",
    "namespace",
]
