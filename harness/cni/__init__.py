"""CNI implementations under test: plugin chains exec'd per the CNI spec, and other
backends (netavark, third parties') behind one small interface."""
