"""``python -m rsfuse`` is the same as the ``rsfuse`` command."""

from rsfuse.cli import main

if __name__ == "__main__":
    main()
