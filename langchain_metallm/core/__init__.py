"""The LangChain-free core: settings, catalogue, learner, decisions and state.

Everything under this folder imports only the standard library, numpy, scipy and
store clients (a test checks the folder as a whole). The LangChain adapter
(``chat_models``, ``feedback`` and the child-call modules beside this folder)
turns messages into query text, asks ``RouterCore.decide`` for a ``Decision``,
calls children in its order, and hands scores back to ``RouterCore.learn``.
"""
