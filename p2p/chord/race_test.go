//go:build race

package chord

// raceDetector is true under -race, where every byte a test moves costs
// shadow-memory work many times over.
const raceDetector = true
