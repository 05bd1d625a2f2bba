"""Test rigs shared by the tests and the benchmarks: test images, an unprivileged user, the stub
model, network-namespace hosts, launcher processes. Not part of the installed product: it needs
a checkout (`bench` and `tests` import it; the product never does)."""
