//! Tests of the XDP steering program that need the kernel (root): `BPF_PROG_TEST_RUN` on crafted
//! frames (no interface), and the program attached to a veth pair between two network
//! namespaces. Without root they print why and pass, unless `UTIPC_REQUIRE_NETNS=1` makes that
//! a failure.

mod classifier;
mod frames;
mod netns;
mod prebuilt;
mod sockets;
mod veth;
