//go:build !race

package chord

const raceDetector = false
