package topology

import (
	"errors"
	"path/filepath"
	"strconv"

	"github.com/coreguard/coreguard/cpuset"
)

// thread is what one online CPU's topology folder says about it.
type thread struct {
	cpu      int
	pkg      int
	die      int
	coreID   int           // -1 when core_id is absent
	siblings cpuset.CPUSet // online threads of its core, itself included
	// where the values came from, for error messages
	pkgFile, dieFile, siblingsFile, siblingsText string
}

// readThreads reads the topology folder of every online CPU, in CPU order.
func readThreads(cpuDir string, online cpuset.CPUSet) ([]thread, error) {
	threads := make([]thread, 0, online.Size())
	for cpu := range online.All() {
		th, err := readThread(filepath.Join(cpuDir, "cpu"+strconv.Itoa(cpu), "topology"), cpu, online)
		if err != nil {
			return nil, err
		}
		threads = append(threads, th)
	}
	if err := resolveUnknownIDs(threads); err != nil {
		return nil, err
	}
	return threads, nil
}

func readThread(dir string, cpu int, online cpuset.CPUSet) (thread, error) {
	th := thread{cpu: cpu, pkgFile: filepath.Join(dir, "physical_package_id"), dieFile: filepath.Join(dir, "die_id")}
	var err error
	if th.pkg, err = readInt(th.pkgFile); errors.Is(err, errAbsent) {
		return th, missingTopology(th.pkgFile, cpu)
	} else if err != nil {
		return th, err
	}
	// die_id appeared in Linux 5.2 and is absent on some architectures:
	// then each package is one die.
	if th.die, err = readInt(th.dieFile); errors.Is(err, errAbsent) {
		th.die = 0
	} else if err != nil {
		return th, err
	}
	if th.coreID, err = readInt(filepath.Join(dir, "core_id")); errors.Is(err, errAbsent) {
		th.coreID = -1
	} else if err != nil {
		return th, err
	}
	// core_cpus_list is the newer name (Linux 5.3) of thread_siblings_list.
	for _, name := range []string{"core_cpus_list", "thread_siblings_list"} {
		th.siblingsFile = filepath.Join(dir, name)
		th.siblingsText, err = readText(th.siblingsFile)
		if !errors.Is(err, errAbsent) {
			break
		}
	}
	if errors.Is(err, errAbsent) {
		return th, missingTopology(th.siblingsFile, cpu)
	} else if err != nil {
		return th, err
	}
	set, perr := cpuset.Parse(th.siblingsText)
	if perr != nil {
		return th, fileError(th.siblingsFile, "%q is not a CPU list: %v", th.siblingsText, perr)
	}
	if !set.Contains(cpu) {
		return th, fileError(th.siblingsFile, "%q does not contain CPU %d itself", th.siblingsText, cpu)
	}
	// The kernel lists only online siblings; a snapshot taken mid-hotplug
	// may name an offline one, which no core can hold.
	th.siblings = set.Intersection(online)
	return th, nil
}

// resolveUnknownIDs handles the kernel's -1 ("unknown") package and die
// ids. When every CPU says -1 the machine is one package (or one die per
// package); -1 beside real ids contradicts itself and is an error.
func resolveUnknownIDs(threads []thread) error {
	fields := []struct {
		get  func(*thread) *int
		file func(*thread) string
	}{
		{func(t *thread) *int { return &t.pkg }, func(t *thread) string { return t.pkgFile }},
		{func(t *thread) *int { return &t.die }, func(t *thread) string { return t.dieFile }},
	}
	for _, f := range fields {
		unknown, known := -1, -1
		for i := range threads {
			if *f.get(&threads[i]) < 0 {
				unknown = i
			} else {
				known = i
			}
		}
		if unknown < 0 {
			continue
		}
		if known >= 0 {
			return fileError(f.file(&threads[unknown]), "\"-1\" (unknown) while %s says %d",
				f.file(&threads[known]), *f.get(&threads[known]))
		}
		for i := range threads {
			*f.get(&threads[i]) = 0
		}
	}
	return nil
}
