"""``python -m skelrecall.bench.losses``: the loss benchmark's command line."""

from skelrecall.bench.losses import main

main()
