// Package editdist measures how far apart two short words are, for the
// "did you mean …?" of the command grammar and the config checker.
package editdist

// MaxLen bounds the words Distance compares; longer words are "far".
const MaxLen = 64

// Far is the distance reported for words longer than MaxLen.
const Far = 1 << 10

// Distance is the Levenshtein distance between a and b (bytes), or Far when
// either is longer than MaxLen, so hostile input costs nothing.
func Distance(a, b string) int {
	if len(a) > MaxLen || len(b) > MaxLen {
		return Far
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
