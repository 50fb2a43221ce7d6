//! Integration tests of nst-costs: finite-difference checks of every cost's gradient (`fd_*`).

mod fd;
