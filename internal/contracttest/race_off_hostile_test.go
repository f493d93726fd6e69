//go:build !race

package contracttest

const raceBuild = false
