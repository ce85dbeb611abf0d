"""Paper experiments run by ``rsfuse experiment NAME`` (each module exposes ``main(argv)``)."""
