package asynclog

import (
	"sync"
	"testing"
)

func TestOrderAndFlush(t *testing.T) {
	var mu sync.Mutex
	var got []int
	for i := 0; i < 3000; i++ { // more than the queue holds: some run inline
		Go(func() {
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
		})
	}
	Flush()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3000 {
		t.Fatalf("ran %d of 3000", len(got))
	}
}
