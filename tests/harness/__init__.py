"""What the acceptance tests share, and the benchmark too (bench/): the server run as
an operator runs it, clients of our own, and what a test expects of an answer.

- ``server``: the real server as a subprocess on loopback (``ServerProcess``), the
  admin CLI (``run_cli``), the run's storage backend (``Backend``: a fresh PostgreSQL
  database per server, or SQLite in the data dir).
- ``cli_forkserver``: not imported but run, as the process each admin command is
  forked from: it imports the command once, so a command costs a fork rather than a
  second of imports, and runs in a process of its own as an operator's does.
- ``v2client``: the v2 client (``Client``: direct HTTP or onion v3 requests; its crypto,
  Session's message padding, ``Identity`` and ``Persona``, a key with its token in a
  room).
- ``communityclient``: the community API client (``CommunityClient``: direct HTTP,
  onion v4 requests, and the onion v3 envelope; 15-blinded signing, the ``X-SOGS-*``
  headers, the v4 framing).
- ``flows``: steps of either API many tests take (a new room, a signed message posted,
  a room's counters read, waiting for the server to act).
- ``expect``: the ``expect_*`` assertions of one answer (a success, a v2 error, a
  community API refusal, a rate limit, a refused command).
- ``probe``: the server's database read (or arranged) from outside, on either backend.
- ``pysogsdata``: a pysogs server's data dir, built from pysogs' own schema, for the
  tests of ``opengroup import-pysogs``.

Nothing the tests import imports the server package: a bug shared by client and server would hide
itself, and the server is driven only as an operator and a client drive it. Tests
import these modules as ``harness.*``: pytest puts ``tests/`` on ``sys.path`` (the
rootdir's conftest.py), and the benchmark puts it there itself.
"""
