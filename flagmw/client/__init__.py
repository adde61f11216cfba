"""The client: the evaluation cache a process keeps (poll, refresh, generation, fork
hook) and the admin operations (publish, kill, override) on a :class:`~flagmw.stores.Store`."""

from flagmw.client.client import ClientStatus, FlagClient, PublishResult, read_env_values

__all__ = ["ClientStatus", "FlagClient", "PublishResult", "read_env_values"]
