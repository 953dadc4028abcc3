"""User-space stand-ins for the components a document runs as daemons: Flannel's UDP
encapsulator (flanneld's TUN device and UDP 8285). They stand on the kernel room only: a test
probes them from outside, as it probes the daemon they stand in for."""
