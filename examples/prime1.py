"""Sums of primes, the plain-Python way (the seed tutorial's prime1 module).

    >>> from prime1 import isprime, sum_primes
    >>> sum_primes(10)                 # 2 + 3 + 5 + 7
    17

prime1_mec.py runs sum_primes on the engines: start ipcluster in this
directory so that they can import this module.
"""

import math


def isprime(n):
    """True if n is prime (trial division by odd numbers up to sqrt(n))."""
    if n < 2:
        return False
    if n < 4:
        return True
    if n % 2 == 0:
        return False
    limit = int(math.sqrt(n))
    i = 3
    while i <= limit:
        if n % i == 0:
            return False
        i += 2
    return True


def sum_primes(n):
    """The sum of all primes below n."""
    return sum(x for x in range(2, n) if isprime(x))
