"""User-space stand-ins for the components a document runs as daemons: Flannel's UDP
encapsulator (flanneld's TUN device and UDP 8285). They use the kernel and probe rooms."""
