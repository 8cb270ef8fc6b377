package sysfsgen

import (
	"fmt"
	"os"

	"github.com/coreguard/coreguard/topology"
)

// Build writes spec to a temporary directory, reads it back with
// topology.Read and removes the directory: a Topology for other packages'
// tests that went through the real reader.
func Build(spec Spec) (*topology.Topology, error) {
	dir, err := os.MkdirTemp(TempRoot(), "sysfsgen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := Write(dir, spec); err != nil {
		return nil, err
	}
	return topology.Read(dir)
}

// BuildShape is Build of a named shape from Shapes.
func BuildShape(name string) (*topology.Topology, error) {
	spec, ok := Shapes()[name]
	if !ok {
		return nil, fmt.Errorf("sysfsgen: no shape named %q", name)
	}
	return Build(spec)
}
