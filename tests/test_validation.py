"""The shared argument checks: NumPy integers are integers, bools are not, and errors name the value."""
import numpy as np
import pytest

from minitorch_compress.validation import as_pair, check_int, check_non_negative, check_number, check_positive


def test_integers_of_every_kind_pass_and_bools_do_not():
    for value in (3, np.int64(3), np.uint8(3), np.int32(3)):
        assert check_int("n", value, 1) == 3 and type(check_int("n", value)) is int
    for bad in (True, 3.0, "3", None):
        with pytest.raises(ValueError, match=r"n must be an int, got"):
            check_int("n", bad)


def test_bounds_are_named():
    with pytest.raises(ValueError, match=r"width must be a positive int, got 0"):
        check_positive(width=0)
    with pytest.raises(ValueError, match=r"step must be a non-negative int, got -1"):
        check_non_negative(step=-1)
    with pytest.raises(ValueError, match=r"k must be an int >= 2, got 1"):
        check_int("k", 1, 2)
    check_positive(a=1, b=np.int16(7))
    check_non_negative(step=0)
    with pytest.raises(ValueError, match=r"bits must be an int from 1 to 16, got 17"):
        check_int("bits", 17, 1, 16)
    with pytest.raises(ValueError, match=r"bits must be an int from 1 to 16, got False"):
        check_int("bits", False, 1, 16)
    assert check_int("bits", np.uint8(16), 1, 16) == 16


def test_pairs():
    assert as_pair(3, "kernel_size") == (3, 3) and as_pair((1, np.int64(2)), "stride") == (1, 2)
    assert as_pair([0, 1], "padding") == (0, 1)
    for bad in ((1, 2, 3), 2.0, (1.5, 2), True, "ab", None):
        with pytest.raises(ValueError, match="kernel_size must be an int or a pair of ints"):
            as_pair(bad, "kernel_size")


def test_numbers_are_finite_reals_in_their_range():
    assert check_number("alpha", np.float32(0.5), 0, 1) == 0.5 and check_number("lr", 3, 0, low_open=True) == 3.0
    for bad, message in [(0, r"lr must be a finite number > 0, got 0"), (True, "got True"), ("1", "got '1'"),
                         (float("inf"), "got inf"), (float("nan"), "got nan")]:
        with pytest.raises(ValueError, match=message):
            check_number("lr", bad, 0, low_open=True)
    with pytest.raises(ValueError, match=r"energy must be a finite number in \(0, 1\], got 1.5"):
        check_number("energy", 1.5, 0, 1, low_open=True)
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0, 1\), got 1"):
        check_number("p", 1, 0, 1, high_open=True)
    with pytest.raises(ValueError, match=r"x must be a finite number <= 2, got 3"):
        check_number("x", 3, high=2)
