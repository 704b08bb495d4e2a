"""Benchmarks and loopback test infrastructure for nsecluster.

* :mod:`bench.farm` -- a loopback "target farm": many TCP listeners on
  127.x.y.z addresses, served by one epoll loop in a subprocess.
* :mod:`bench.portscan` -- runs the same port scan with ``nmap`` and
  ``nsecluster`` against the farm and compares time, memory and results.

Everything here only ever talks to 127.0.0.0/8.
"""
