package config_test

import (
	"fmt"

	"github.com/gmailtls/gmailtls/config"
)

func ExampleParse() {
	text := `
[target]
family = "5"

[[relay]]
name = "relay-1"
sorce_ips = ["192.0.2.10"]
`
	getenv := func(string) string { return "" }
	_, err := config.Parse([]byte(text), "config.toml", "/etc/gmailtls", getenv)
	for _, p := range config.Problems(err) {
		fmt.Println(p)
	}
	// Output:
	// config.toml:3: target.family: "5" is not one of "4", "6" or "any"
	// config.toml:7: unknown key relay.sorce_ips (did you mean source_ips?)
}

func ExampleLoad() {
	cfg, err := config.Load("../config.toml.example", func(string) string { return "" })
	if err != nil {
		fmt.Println(err)
		return
	}
	r, _ := cfg.RelayByName("relay-1")
	fmt.Println(r.Kind, cfg.Target.Domain, cfg.Target.Timeout, cfg.Retention.Raw)
	// Output:
	// local gmail.com 20s 30d
}
