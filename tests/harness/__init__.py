"""What the acceptance tests share, and the benchmark too (bench/): the server run as
an operator runs it (``server``), the two independent clients (``v2client``,
``communityclient``), the community API's common steps (``flows``), a look at the
server's database (``probe``) and pysogs' data for the import tests (``pysogsdata``).

Nothing here imports the server package. Tests import these modules as ``harness.*``:
pytest puts ``tests/`` on ``sys.path`` (the rootdir's conftest.py), and the benchmark
puts it there itself.
"""
