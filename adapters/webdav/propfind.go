package webdav

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxPropfindBody bounds the request body a PROPFIND may carry (OpenDAL
// sends an allprop of about 100 bytes).
const maxPropfindBody = 64 << 10

// propfind answers PROPFIND with Depth 0 (the resource) or 1 (and a
// collection's members). Every response carries one propstat with the same
// live properties whatever the body asks for: OpenDAL parses exactly one
// propstat per response and needs displayname and getlastmodified on
// collections too. Depth infinity (also what a missing Depth means) is
// refused as RFC 4918 allows, with propfind-finite-depth.
func (a *Adapter) propfind(w http.ResponseWriter, r *http.Request, p davPath, slash bool) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "propfind", time.Now())
	depth := r.Header.Get("Depth")
	if depth != "0" && depth != "1" {
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>`+"\n")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPropfindBody+1))
	if err != nil || len(body) > maxPropfindBody {
		http.Error(w, "unreadable or oversized PROPFIND body", http.StatusBadRequest)
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var pf struct {
			XMLName xml.Name
		}
		if err := xml.Unmarshal(body, &pf); err != nil || pf.XMLName.Local != "propfind" {
			http.Error(w, "malformed PROPFIND body", http.StatusBadRequest)
			return
		}
	}
	ctx := r.Context()
	self, ok := a.lookup(ctx, p, slash)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var out bytes.Buffer
	out.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n" + `<D:multistatus xmlns:D="DAV:">` + "\n")
	writeResponse(&out, p, self)
	if depth == "1" && self.collection {
		members, _, _, err := a.readListing(ctx, p)
		if err != nil {
			a.log.Warn("webdav: cannot read listing", "collection", string(p), "err", err)
		}
		for _, m := range members {
			name, isColl := m, false
			if m[len(m)-1] == '/' {
				name, isColl = m[:len(m)-1], true
			}
			child := p.child(name)
			key := child.fileKey()
			if isColl {
				key = child.collectionKey()
			}
			// Listed but gone (evicted, or deleted on another edge): left out.
			st, err := a.cache.Stat(ctx, a.ref(key))
			if err != nil || !st.Found {
				continue
			}
			writeResponse(&out, child, resource{collection: isColl, meta: st.Meta})
		}
	}
	out.WriteString("</D:multistatus>\n")
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(out.Len()))
	w.WriteHeader(http.StatusMultiStatus)
	w.Write(out.Bytes())
}

// writeResponse renders one resource's response element.
func writeResponse(out *bytes.Buffer, p davPath, res resource) {
	text := func(tag, value string) {
		out.WriteString("<D:" + tag + ">")
		xml.EscapeText(out, []byte(value))
		out.WriteString("</D:" + tag + ">")
	}
	out.WriteString("<D:response>")
	text("href", p.href(res.collection))
	out.WriteString("<D:propstat><D:prop>")
	name := p.name()
	if p.isRoot() {
		name = "/"
	}
	text("displayname", name)
	if res.collection {
		out.WriteString("<D:resourcetype><D:collection/></D:resourcetype>")
	} else {
		out.WriteString("<D:resourcetype/>")
		text("getcontentlength", strconv.FormatInt(res.meta.Size, 10))
		text("getcontenttype", "application/octet-stream")
	}
	text("getlastmodified", lastModified(res.meta).Format(http.TimeFormat))
	if res.meta.Hash != "" {
		text("getetag", etag(res.meta))
	}
	out.WriteString("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\n")
}
