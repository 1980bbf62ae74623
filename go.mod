module candor

go 1.26.8

require (
	github.com/google/go-cmp v0.7.0
	github.com/thomas-vilte/mls-go v1.6.0
)

require (
	golang.org/x/crypto v0.53.0 // indirect
	golang.org/x/sys v0.46.0 // indirect
)
