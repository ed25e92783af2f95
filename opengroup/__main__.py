"""``python -m opengroup`` is the ``opengroup`` command."""

from opengroup.cli.main import main

if __name__ == "__main__":
    main()
