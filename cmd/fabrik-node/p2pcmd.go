package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const p2pUsage = `usage: fabrik-node p2p list [--verbose]     peers found and consent decisions
       fabrik-node p2p status               this node's P2P identity, mode and counters
       fabrik-node p2p approve PEER         let a peer (its machine id) read from this cache
       fabrik-node p2p deny PEER            refuse a peer
       fabrik-node p2p clear                forget every consent decision
flags: --url API_URL (default: the activated daemon's API, else http://127.0.0.1:9091),
       --token TOKEN (or FABRIK_TOKEN) when the node requires auth (admin scope)`

// defaultAPIURL is the API listener of an edge started with no config.
const defaultAPIURL = "http://127.0.0.1:9091"

// p2pCommand talks to the running node's /api/v1/p2p endpoints (admin
// access; open on a loopback API without auth).
func p2pCommand(args []string, cwd string) int {
	target, token, verbose := "", os.Getenv("FABRIK_TOKEN"), false
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--url" && i+1 < len(args):
			target = args[i+1]
			i++
		case strings.HasPrefix(a, "--url="):
			target = strings.TrimPrefix(a, "--url=")
		case a == "--token" && i+1 < len(args):
			token = args[i+1]
			i++
		case a == "--verbose" || a == "-v":
			verbose = true
		case strings.HasPrefix(a, "-"):
			return fail("p2p: unknown flag %q\n%s", a, p2pUsage)
		default:
			pos = append(pos, a)
		}
	}
	if target == "" {
		if s, _ := activatedDaemon(cwd); s != nil && s.URL("http", "api") != "" {
			target = s.URL("http", "api")
		} else {
			target = defaultAPIURL
		}
	}
	target = strings.TrimRight(target, "/")
	if len(pos) == 0 {
		return fail("p2p: missing subcommand\n%s", p2pUsage)
	}
	call := func(method, path string, out any) error {
		req, err := http.NewRequest(method, target+path, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return fmt.Errorf("%s unreachable: %w", target, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s has no P2P endpoints: is [p2p] enabled on this edge?", target)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s: %s", path, resp.Status, strings.TrimSpace(string(raw)))
		}
		return json.Unmarshal(raw, out)
	}
	switch sub := pos[0]; {
	case (sub == "approve" || sub == "deny") && len(pos) == 2:
		var out map[string]any
		if err := call(http.MethodPost, "/api/v1/p2p/"+sub+"?peer="+url.QueryEscape(pos[1]), &out); err != nil {
			return fail("p2p %s: %v", sub, err)
		}
		fmt.Printf("[fabrik] p2p: %s %s\n", pos[1], map[string]string{"approve": "approved", "deny": "denied"}[sub])
		return 0
	case sub == "clear" && len(pos) == 1:
		var out map[string]any
		if err := call(http.MethodPost, "/api/v1/p2p/clear", &out); err != nil {
			return fail("p2p clear: %v", err)
		}
		fmt.Println("[fabrik] p2p: every consent decision forgotten")
		return 0
	case sub == "status" && len(pos) == 1:
		var out map[string]any
		if err := call(http.MethodGet, "/api/v1/p2p/status", &out); err != nil {
			return fail("p2p status: %v", err)
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Println(string(b))
		return 0
	case sub == "list" && len(pos) == 1:
		var out struct {
			Peers []struct {
				Addr, Instance, Consent, Version string
				MachineID                        string    `json:"machine_id"`
				Static                           bool      `json:"static"`
				LastSeen                         time.Time `json:"last_seen"`
			} `json:"peers"`
			Decisions []struct {
				MachineID string    `json:"machine_id"`
				User      string    `json:"user"`
				Host      string    `json:"host"`
				Decision  string    `json:"decision"`
				At        time.Time `json:"at"`
			} `json:"decisions"`
		}
		if err := call(http.MethodGet, "/api/v1/p2p/peers", &out); err != nil {
			return fail("p2p list: %v", err)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
		if verbose {
			fmt.Fprintln(w, "PEER\tINSTANCE\tMACHINE ID\tVERSION\tSTATIC\tLAST SEEN\tLETS US READ")
		} else {
			fmt.Fprintln(w, "PEER\tINSTANCE\tLETS US READ")
		}
		for _, p := range out.Peers {
			if verbose {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", p.Addr, p.Instance, p.MachineID, p.Version, p.Static, p.LastSeen.Format(time.RFC3339), p.Consent)
			} else {
				fmt.Fprintf(w, "%s\t%s\t%s\n", p.Addr, p.Instance, p.Consent)
			}
		}
		w.Flush()
		if len(out.Decisions) > 0 {
			fmt.Println("\nconsent given by this node:")
			w = tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(w, "MACHINE ID\tUSER\tHOST\tDECISION\tAT")
			for _, d := range out.Decisions {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.MachineID, d.User, d.Host, d.Decision, d.At.Format(time.RFC3339))
			}
			w.Flush()
		}
		return 0
	}
	return fail("p2p: bad arguments %q\n%s", pos, p2pUsage)
}
