package bench

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Latency
	}{
		{"empty", nil, Latency{}},
		{"one", ms(7), Latency{N: 1, P50: 7, P90: 7, P99: 7, Max: 7}},
		{"two", ms(9, 1), Latency{N: 2, P50: 1, P90: 9, P99: 9, Max: 9}},
		{"ten", ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), Latency{N: 10, P50: 5, P90: 9, P99: 10, Max: 10}},
		{"hundred", ms(hundred...), Latency{N: 100, P50: 50, P90: 90, P99: 99, Max: 100}},
		{"sub-millisecond", []time.Duration{1500 * time.Microsecond}, Latency{N: 1, P50: 1.5, P90: 1.5, P99: 1.5, Max: 1.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Fatalf("summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	for _, tt := range []struct{ a, b, want float64 }{{3, 2, 1.5}, {1, 3, 0.33}, {5, 0, 0}} {
		if got := ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
