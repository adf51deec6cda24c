! A Fortran golden kernel: the sum of squares of a vector, callable from C as ftn_sumsq.
function ftn_sumsq(a, n) result(total) bind(c, name="ftn_sumsq")
  use iso_c_binding, only: c_double, c_int
  implicit none
  integer(c_int), value :: n
  real(c_double), intent(in) :: a(n)
  real(c_double) :: total
  total = sum(a * a)
end function ftn_sumsq
