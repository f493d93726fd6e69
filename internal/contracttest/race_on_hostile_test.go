//go:build race

package contracttest

// raceBuild: the gateway binary is built with -race (its memory is several
// times larger: shadow memory), so RSS ceilings scale with it.
const raceBuild = true
