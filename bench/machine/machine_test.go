package machine

import "testing"

func TestModelOf(t *testing.T) {
	tests := []struct {
		name, cpuinfo, want string
	}{
		{"x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n", "AMD EPYC"},
		{"no model name (arm64)", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n", "?"},
		{"empty", "", "?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := modelOf(tt.cpuinfo); got != tt.want {
				t.Errorf("modelOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadOf(t *testing.T) {
	tests := []struct {
		name, loadavg, want string
	}{
		{"proc", "2.27 1.25 1.62 3/412 9876\n", "2.27 1.25 1.62"},
		{"short", "2.27 1.25", "?"},
		{"empty", "", "?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := loadOf(tt.loadavg); got != tt.want {
				t.Errorf("loadOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLive(t *testing.T) {
	// On Linux each is read from /proc; elsewhere "?" is the answer.
	for name, v := range map[string]string{"Model": Model(), "LoadAvg": LoadAvg(), "Kernel": Kernel()} {
		if v == "" {
			t.Errorf("%s is empty, want a value or \"?\"", name)
		}
	}
}
