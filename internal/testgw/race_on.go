//go:build race

package testgw

const raceEnabled = true
