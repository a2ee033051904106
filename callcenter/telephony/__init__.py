"""Telephony: media worker processes (the only place that imports ``pjsua2``), their IPC and the pool.

``protocol`` holds the messages (stdlib only), ``admission`` the leg budget and rate limit (pure),
``pool`` the asyncio :class:`~callcenter.telephony.pool.WorkerPool` and its in-memory twin
:class:`~callcenter.telephony.pool.FakeTelephony`, ``worker`` the worker process itself.
Importing this package loads none of them.
"""
