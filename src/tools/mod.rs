//! Tools around the router that are not the router: the standalone simulated
//! CTI Server (`sim-pg`), the `watch` client, and record/replay files. They
//! use mio, not glommio, so they never share the router's runtime.
