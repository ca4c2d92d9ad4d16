package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// healthCommand checks a running node: exit 0 when /health answers 200.
func healthCommand(args []string) int {
	url := "http://127.0.0.1:8888/health"
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--url" && i+1 < len(args):
			url = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--url="):
			url = strings.TrimPrefix(args[i], "--url=")
		default:
			return fail("health: unknown argument %q", args[i])
		}
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[fabrik] health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Printf("[fabrik] %s %s\n", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
