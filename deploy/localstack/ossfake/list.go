package ossfake

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// OSS list limits: max-keys defaults to 100 and is capped at 1000.
const (
	defaultMaxKeys = 100
	maxMaxKeys     = 1000
)

// listParams are the query parameters of ListObjects(V2) and ListBuckets.
// A bucket GET with any other parameter is a sub-resource request
// (?location, ?uploads, ...) and is left to gofakes3.
var listParams = map[string]bool{
	"prefix": true, "delimiter": true, "marker": true, "max-keys": true,
	"list-type": true, "continuation-token": true, "start-after": true,
	"encoding-type": true, "fetch-owner": true,
}

func isListRequest(q url.Values) bool {
	for k := range q {
		if !listParams[k] {
			return false
		}
	}
	return true
}

type ownerXML struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

var owner = ownerXML{ID: "ossfake", DisplayName: "ossfake"}

type objectXML struct {
	Key          string    `xml:"Key"`
	LastModified time.Time `xml:"LastModified"`
	ETag         string    `xml:"ETag"`
	Type         string    `xml:"Type"`
	Size         int64     `xml:"Size"`
	StorageClass string    `xml:"StorageClass"`
	Owner        *ownerXML `xml:"Owner,omitempty"`
}

type commonPrefixXML struct {
	Prefix string `xml:"Prefix"`
}

type listResult struct {
	XMLName               xml.Name          `xml:"ListBucketResult"`
	Name                  string            `xml:"Name"`
	Prefix                string            `xml:"Prefix"`
	Marker                *string           `xml:"Marker"`     // V1 only
	StartAfter            *string           `xml:"StartAfter"` // V2 only
	ContinuationToken     string            `xml:"ContinuationToken,omitempty"`
	MaxKeys               int               `xml:"MaxKeys"`
	Delimiter             string            `xml:"Delimiter"`
	IsTruncated           bool              `xml:"IsTruncated"`
	NextMarker            string            `xml:"NextMarker,omitempty"`
	NextContinuationToken string            `xml:"NextContinuationToken,omitempty"`
	KeyCount              *int              `xml:"KeyCount"` // V2 only
	EncodingType          string            `xml:"EncodingType,omitempty"`
	Contents              []objectXML       `xml:"Contents"`
	CommonPrefixes        []commonPrefixXML `xml:"CommonPrefixes"`
}

// listObjects serves ListObjects and ListObjectsV2 (list-type=2) the way
// OSS does: sorted keys, delimiter roll-up, max-keys paging with
// NextMarker / NextContinuationToken, and encoding-type=url. With truncate
// (the TruncateListing fault) the page claims to be truncated and carries
// no token to continue from.
func (s *Server) listObjects(w http.ResponseWriter, r *http.Request, bucket string, truncate bool) {
	q := r.URL.Query()
	maxKeys, err := parseMaxKeys(q.Get("max-keys"))
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "InvalidArgument", err.Error())
		return
	}
	v2 := q.Get("list-type") == "2"
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	marker := q.Get("marker")
	if v2 {
		marker = q.Get("start-after")
		if tok := q.Get("continuation-token"); tok != "" {
			b, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil {
				writeError(w, r, http.StatusBadRequest, "InvalidArgument", "invalid continuation-token")
				return
			}
			marker = string(b)
		}
	}

	objs, err := s.store.listObjects(bucket, prefix)
	if err != nil {
		s.writeBackendError(w, r, err)
		return
	}

	enc := func(v string) string { return v }
	res := listResult{Name: bucket, MaxKeys: maxKeys}
	if q.Get("encoding-type") == "url" {
		enc = url.QueryEscape
		res.EncodingType = "url"
	}
	res.Prefix, res.Delimiter = enc(prefix), enc(delim)

	var last string // last key or common prefix returned
	count := 0
	for _, o := range objs {
		entry, isPrefix := o.Key, false
		if delim != "" {
			if i := strings.Index(o.Key[len(prefix):], delim); i >= 0 {
				entry, isPrefix = o.Key[:len(prefix)+i+len(delim)], true
			}
		}
		if entry <= marker || (isPrefix && entry == last) {
			continue
		}
		if count == maxKeys {
			res.IsTruncated = true
			break
		}
		count++
		last = entry
		if isPrefix {
			res.CommonPrefixes = append(res.CommonPrefixes, commonPrefixXML{Prefix: enc(entry)})
			continue
		}
		ox := objectXML{
			Key:          enc(o.Key),
			LastModified: o.LastModified.UTC(),
			ETag:         o.ETag,
			Type:         "Normal",
			Size:         o.Size,
			StorageClass: "Standard",
		}
		if !v2 || q.Has("fetch-owner") {
			ox.Owner = &owner
		}
		res.Contents = append(res.Contents, ox)
	}

	if truncate {
		res.IsTruncated = true
	}
	if v2 {
		res.StartAfter = new(enc(q.Get("start-after")))
		res.ContinuationToken = q.Get("continuation-token")
		res.KeyCount = &count
		if res.IsTruncated && !truncate {
			res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(last))
		}
	} else {
		res.Marker = new(enc(marker))
		if res.IsTruncated && !truncate {
			res.NextMarker = enc(last)
		}
	}
	writeXML(w, r, res)
}

type bucketXML struct {
	Name             string    `xml:"Name"`
	CreationDate     time.Time `xml:"CreationDate"`
	Location         string    `xml:"Location"`
	ExtranetEndpoint string    `xml:"ExtranetEndpoint"`
	IntranetEndpoint string    `xml:"IntranetEndpoint"`
	Region           string    `xml:"Region"`
	StorageClass     string    `xml:"StorageClass"`
}

type listBucketsResult struct {
	XMLName     xml.Name    `xml:"ListAllMyBucketsResult"`
	Prefix      string      `xml:"Prefix"`
	Marker      string      `xml:"Marker"`
	MaxKeys     int         `xml:"MaxKeys"`
	IsTruncated bool        `xml:"IsTruncated"`
	NextMarker  string      `xml:"NextMarker,omitempty"`
	Owner       ownerXML    `xml:"Owner"`
	Buckets     []bucketXML `xml:"Buckets>Bucket"`
}

// listBuckets serves ListBuckets (GET /) with OSS's prefix, marker and
// max-keys; the SDK's Client.IsBucketExist depends on prefix and max-keys.
func (s *Server) listBuckets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	maxKeys, err := parseMaxKeys(q.Get("max-keys"))
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "InvalidArgument", err.Error())
		return
	}
	buckets, err := s.store.ListBuckets()
	if err != nil {
		s.writeBackendError(w, r, err)
		return
	}
	slices.SortFunc(buckets, func(a, b gofakes3.BucketInfo) int { return strings.Compare(a.Name, b.Name) })

	prefix, marker := q.Get("prefix"), q.Get("marker")
	res := listBucketsResult{Prefix: prefix, Marker: marker, MaxKeys: maxKeys, Owner: owner}
	for _, b := range buckets {
		if !strings.HasPrefix(b.Name, prefix) || b.Name <= marker {
			continue
		}
		if len(res.Buckets) == maxKeys {
			res.IsTruncated = true
			res.NextMarker = res.Buckets[len(res.Buckets)-1].Name
			break
		}
		res.Buckets = append(res.Buckets, bucketXML{
			Name:             b.Name,
			CreationDate:     b.CreationDate.UTC(),
			Location:         "oss-local",
			ExtranetEndpoint: r.Host,
			IntranetEndpoint: r.Host,
			Region:           "local",
			StorageClass:     "Standard",
		})
	}
	writeXML(w, r, res)
}

// parseMaxKeys parses max-keys, applying OSS's default and cap.
func parseMaxKeys(v string) (int, error) {
	if v == "" {
		return defaultMaxKeys, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid max-keys %q", v)
	}
	return min(n, maxMaxKeys), nil
}
