//! The lab: a Kubernetes-node lookalike made of network namespaces.
