package a2agateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/agentgov/agentgov/errcode"
)

// filesKey is the argument under which a message's file parts are
// described to policies: name, mimeType, uri and the size of inline bytes.
const filesKey = "_files"

// input is what policies see of some parts: their text as content, their
// data as args. The other free text that goes along with them (metadata,
// extension URIs, an artifact's name and description) follows the text in
// content: the other side reads it as surely as the text, so a rule on
// content must see it, and an approval must cover it.
type input struct {
	texts []string
	meta  []string
	args  map[string]any
	files []any
}

func (in *input) content() string {
	if len(in.meta) == 0 {
		return strings.Join(in.texts, "\n")
	}
	return strings.Join(append(slices.Clip(in.texts), in.meta...), "\n")
}

// addMeta reads the strings of metadata into content: its keys and its
// string values, at any depth, in key order so that the same metadata
// always reads the same.
func (in *input) addMeta(v any) {
	switch v := v.(type) {
	case string:
		if v != "" {
			in.meta = append(in.meta, v)
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			in.addMeta(k)
			in.addMeta(v[k])
		}
	case []any:
		for _, e := range v {
			in.addMeta(e)
		}
	case []string:
		for _, e := range v {
			in.addMeta(e)
		}
	}
}

func (in *input) arguments() map[string]any {
	if len(in.files) > 0 {
		if in.args == nil {
			in.args = map[string]any{}
		}
		in.args[filesKey] = in.files
	}
	return in.args
}

func (in *input) empty() bool {
	return len(in.texts) == 0 && len(in.meta) == 0 && len(in.args) == 0 && len(in.files) == 0
}

// add reads parts into in and returns their size in bytes (text, data as
// JSON, file bytes decoded). where names the parts in errors. A file
// part's inline bytes past maxFile, bytes that are not base64, or two
// data parts that give one key two values are refused: a policy must
// never decide on something other than what the upstream will read.
func (in *input) add(parts a2a.ContentParts, where string, maxFile int64) (int64, *errcode.Error) {
	var size int64
	for i, p := range parts {
		at := fmt.Sprintf("%s.parts[%d]", where, i)
		if p != nil {
			in.addMeta(p.Meta())
		}
		switch p := p.(type) {
		case a2a.TextPart:
			in.texts = append(in.texts, p.Text)
			size += int64(len(p.Text))
		case *a2a.TextPart:
			in.texts = append(in.texts, p.Text)
			size += int64(len(p.Text))
		case a2a.DataPart:
			n, err := in.addData(p.Data, at)
			if err != nil {
				return 0, err
			}
			size += n
		case *a2a.DataPart:
			n, err := in.addData(p.Data, at)
			if err != nil {
				return 0, err
			}
			size += n
		case a2a.FilePart:
			n, err := in.addFile(p, at, maxFile)
			if err != nil {
				return 0, err
			}
			size += n
		case *a2a.FilePart:
			n, err := in.addFile(*p, at, maxFile)
			if err != nil {
				return 0, err
			}
			size += n
		default:
			return 0, errcode.Errorf(errcode.BadRequest, "%s: a part of unknown kind", at)
		}
	}
	return size, nil
}

func (in *input) addData(data map[string]any, at string) (int64, *errcode.Error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return 0, errcode.Errorf(errcode.BadRequest, "%s: data cannot be encoded: %v", at, err)
	}
	if in.args == nil {
		in.args = map[string]any{}
	}
	for k, v := range data {
		if k == filesKey {
			return 0, errcode.Errorf(errcode.BadRequest, "%s: data key %q is kept for the description of file parts", at, k)
		}
		if prev, ok := in.args[k]; ok && !reflect.DeepEqual(prev, v) {
			return 0, errcode.Errorf(errcode.BadRequest, "%s: data key %q is given another value by an earlier part; policies read the data parts as one object, so send one value", at, k)
		}
		in.args[k] = v
	}
	return int64(len(raw)), nil
}

func (in *input) addFile(p a2a.FilePart, at string, maxFile int64) (int64, *errcode.Error) {
	desc := map[string]any{}
	var size int64
	switch f := p.File.(type) {
	case a2a.FileBytes:
		desc["name"], desc["mimeType"] = f.Name, f.MimeType
		if int64(base64.StdEncoding.DecodedLen(len(f.Bytes))) > maxFile+3 {
			return 0, errcode.Errorf(errcode.TooLarge, "%s: the file's inline bytes are over the limit of %d bytes (a2a.max_file_bytes)", at, maxFile)
		}
		b, err := decodeBase64(f.Bytes)
		if err != nil {
			return 0, errcode.Errorf(errcode.BadRequest, "%s: the file's bytes are not base64: %v", at, err)
		}
		if int64(len(b)) > maxFile {
			return 0, errcode.Errorf(errcode.TooLarge, "%s: the file's inline bytes are over the limit of %d bytes (a2a.max_file_bytes)", at, maxFile)
		}
		size = int64(len(b))
		desc["bytes"] = size
	case a2a.FileURI:
		desc["name"], desc["mimeType"], desc["uri"] = f.Name, f.MimeType, f.URI
	default:
		return 0, errcode.Errorf(errcode.BadRequest, "%s: a file part with neither bytes nor uri", at)
	}
	in.files = append(in.files, desc)
	return size, nil
}

func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// messageInput reads a caller's message, and the metadata of the request
// that carries it.
func messageInput(m *a2a.Message, reqMeta map[string]any, maxFile int64) (*input, *errcode.Error) {
	in := &input{}
	if err := in.addMessage(m, "message", maxFile); err != nil {
		return nil, err
	}
	in.addMeta(reqMeta)
	return in, nil
}

// addMessage reads a message's parts, extensions and metadata.
func (in *input) addMessage(m *a2a.Message, where string, maxFile int64) *errcode.Error {
	if m == nil {
		return nil
	}
	if _, err := in.add(m.Parts, where, maxFile); err != nil {
		return err
	}
	in.addMeta(m.Extensions)
	in.addMeta(m.Metadata)
	return nil
}

// replyInput reads what a reply gives the caller: a message, or a task's
// status message, artifacts and history. The history's turns in the
// caller's name are read too: the gateway cannot tell the caller's own
// words from words the upstream put in its mouth. Each artifact is
// bounded as a whole.
func replyInput(ev a2a.Event, maxFile, maxArtifact int64) (*input, *errcode.Error) {
	in := &input{}
	addMsg := func(m *a2a.Message, where string) *errcode.Error { return in.addMessage(m, where, maxFile) }
	addArtifact := func(a *a2a.Artifact, where string) *errcode.Error {
		if a == nil {
			return nil
		}
		n, err := in.add(a.Parts, where, maxFile)
		if err != nil {
			return err
		}
		if n > maxArtifact {
			return tooLargeArtifact(where, a.ID, n, maxArtifact)
		}
		in.addMeta(a.Name)
		in.addMeta(a.Description)
		in.addMeta(a.Extensions)
		in.addMeta(a.Metadata)
		return nil
	}
	switch e := ev.(type) {
	case *a2a.Message:
		if err := addMsg(e, "message"); err != nil {
			return nil, err
		}
	case *a2a.Task:
		if err := addMsg(e.Status.Message, "task.status.message"); err != nil {
			return nil, err
		}
		for i, a := range e.Artifacts {
			if err := addArtifact(a, fmt.Sprintf("task.artifacts[%d]", i)); err != nil {
				return nil, err
			}
		}
		for i, m := range e.History {
			if err := addMsg(m, fmt.Sprintf("task.history[%d]", i)); err != nil {
				return nil, err
			}
		}
		in.addMeta(e.Metadata)
	case *a2a.TaskStatusUpdateEvent:
		if err := addMsg(e.Status.Message, "status.message"); err != nil {
			return nil, err
		}
		in.addMeta(e.Metadata)
	case *a2a.TaskArtifactUpdateEvent:
		if err := addArtifact(e.Artifact, "artifact"); err != nil {
			return nil, err
		}
		in.addMeta(e.Metadata)
	}
	return in, nil
}

func tooLargeArtifact(where string, id a2a.ArtifactID, n, max int64) *errcode.Error {
	return errcode.Errorf(errcode.TooLarge, "%s (artifact %q) is %d bytes, over the limit of %d (a2a.max_artifact_bytes)", where, id, n, max)
}
