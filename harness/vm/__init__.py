"""Running the suites in Vagrant VMs: the boxes (boxes.json), the offline box builder (box),
libvirtd in a network namespace of its own (netns), and the python-vagrant driver (driver)."""
