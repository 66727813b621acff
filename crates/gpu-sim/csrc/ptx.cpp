// A reader for the parts of PTX the software GPU checks (ptx.h). It scans the text rather than
// parsing the whole grammar: comments removed, then the `.version`, `.target`, `.shared`
// declarations and each `.entry` with its parameter list, directives and body.
#include "ptx.h"

#include <cctype>
#include <cstring>
#include <map>

namespace sim {
namespace {

std::string strip_comments(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (s.compare(i, 2, "//") == 0) {
            while (i < s.size() && s[i] != '\n') i++;
        } else if (s.compare(i, 2, "/*") == 0) {
            size_t end = s.find("*/", i + 2);
            i = end == std::string::npos ? s.size() : end + 2;
        } else {
            out += s[i++];
        }
    }
    return out;
}

bool ident_char(char c) { return std::isalnum((unsigned char)c) || c == '_' || c == '$' || c == '.'; }

// The size in bytes of a PTX scalar type (`.u64`, `.f32`, `.b8`, ...), or 0.
uint32_t type_size(const std::string& t) {
    static const std::map<std::string, uint32_t> sizes = {
        {".u8", 1},  {".s8", 1},  {".b8", 1},  {".u16", 2}, {".s16", 2}, {".b16", 2}, {".f16", 2}, {".bf16", 2},
        {".u32", 4}, {".s32", 4}, {".b32", 4}, {".f32", 4}, {".u64", 8}, {".s64", 8}, {".b64", 8}, {".f64", 8},
    };
    auto it = sizes.find(t);
    return it == sizes.end() ? 0 : it->second;
}

std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (std::isspace((unsigned char)c) || c == ',' || c == ';') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

// Bytes of a declaration's words after its state space: [.align N] .type name[[N]]...
bool declared_size(const std::vector<std::string>& w, size_t from, std::string& name, uint64_t& bytes) {
    uint32_t elem = 0;
    for (size_t i = from; i < w.size(); i++) {
        if (w[i] == ".align" || w[i] == ".ptr" || w[i] == ".global" || w[i] == ".const" || w[i] == ".shared" || w[i] == ".local") {
            if (w[i] == ".align") i++;
            continue;
        }
        if (!elem && (elem = type_size(w[i]))) continue;
        if (!elem) return false;
        std::string token = w[i];
        size_t bracket = token.find('[');
        name = token.substr(0, bracket);
        bytes = elem;
        while (bracket != std::string::npos) {
            size_t close = token.find(']', bracket);
            bytes *= std::strtoull(token.c_str() + bracket + 1, nullptr, 10);
            bracket = close == std::string::npos ? close : token.find('[', close);
        }
        return true;
    }
    return false;
}

bool mentions(const std::string& body, const std::string& name) {
    for (size_t at = body.find(name); at != std::string::npos; at = body.find(name, at + 1)) {
        bool before = at > 0 && ident_char(body[at - 1]) && body[at - 1] != '.';
        bool after = at + name.size() < body.size() && ident_char(body[at + name.size()]) && body[at + name.size()] != '.';
        if (!before && !after) return true;
    }
    return false;
}

// Whether a body holds an instruction through which threads can wait for each other or see
// each other's registers (or a call, whose callee might).
bool synchronizes(const std::string& body) {
    for (const char* op : {"bar.", "barrier.", "shfl.", "wmma.", "mma.", "vote.", "match.", "redux.", "call"}) {
        for (size_t at = body.find(op); at != std::string::npos; at = body.find(op, at + 1)) {
            if (at == 0 || std::isspace((unsigned char)body[at - 1]) || body[at - 1] == '}' || body[at - 1] == ';') return true;
        }
    }
    return false;
}

unsigned product_of_numbers(const std::string& s) {
    unsigned product = 1;
    bool any = false;
    for (const std::string& w : words(s)) {
        if (!w.empty() && std::isdigit((unsigned char)w[0])) {
            product *= (unsigned)std::strtoul(w.c_str(), nullptr, 10);
            any = true;
        }
    }
    return any ? product : 0;
}

}  // namespace

std::string parse_ptx(const std::string& raw, ModuleImage& out) {
    std::string text = strip_comments(raw);
    size_t v = text.find(".version");
    if (v == std::string::npos) return "no .version directive: this is not PTX";
    int major = 0, minor = 0;
    if (sscanf(text.c_str() + v + 8, " %d.%d", &major, &minor) != 2) return "unreadable .version directive";
    out.version = major * 10 + minor;
    size_t t = text.find(".target");
    if (t == std::string::npos) return "no .target directive";
    size_t sm = text.find("sm_", t);
    if (sm == std::string::npos) return "unreadable .target directive";
    out.target = std::atoi(text.c_str() + sm + 3);

    // Entry bodies first, so that declarations inside them are told from module-scope ones.
    struct Span {
        size_t begin, end;
    };
    std::vector<Span> bodies;
    std::vector<std::string> entry_bodies;
    for (size_t at = text.find(".entry"); at != std::string::npos; at = text.find(".entry", at + 6)) {
        if (at > 0 && !std::isspace((unsigned char)text[at - 1])) continue;
        size_t name_begin = at + 6;
        while (name_begin < text.size() && std::isspace((unsigned char)text[name_begin])) name_begin++;
        size_t name_end = name_begin;
        while (name_end < text.size() && ident_char(text[name_end]) && text[name_end] != '.') name_end++;
        KernelEntry entry;
        entry.name = text.substr(name_begin, name_end - name_begin);
        size_t open = text.find('(', name_end), brace = text.find('{', name_end);
        if (brace == std::string::npos) return "entry " + entry.name + " has no body";
        size_t directives_from = name_end;
        if (open != std::string::npos && open < brace) {
            size_t close = text.find(')', open);
            if (close == std::string::npos) return "entry " + entry.name + ": unterminated parameter list";
            std::string params = text.substr(open + 1, close - open - 1);
            size_t from = 0;
            for (;;) {
                size_t p = params.find(".param", from);
                if (p == std::string::npos) break;
                size_t next = params.find(".param", p + 6);
                std::vector<std::string> w = words(params.substr(p + 6, (next == std::string::npos ? params.size() : next) - p - 6));
                std::string name;
                uint64_t bytes = 0;
                if (!declared_size(w, 0, name, bytes)) return "entry " + entry.name + ": unreadable parameter near \"" + params.substr(p, 60) + "\"";
                entry.param_sizes.push_back((uint32_t)bytes);
                from = p + 6;
            }
            directives_from = close + 1;
        }
        std::string directives = text.substr(directives_from, brace - directives_from);
        if (size_t m = directives.find(".maxntid"); m != std::string::npos) entry.maxntid = product_of_numbers(directives.substr(m + 8, directives.find('.', m + 8) - m - 8));
        if (size_t r = directives.find(".reqntid"); r != std::string::npos) entry.reqntid = product_of_numbers(directives.substr(r + 8, directives.find('.', r + 8) - r - 8));
        int depth = 0;
        size_t end = brace;
        for (; end < text.size(); end++) {
            if (text[end] == '{') depth++;
            if (text[end] == '}' && --depth == 0) break;
        }
        if (depth != 0) return "entry " + entry.name + ": unterminated body";
        std::string body = text.substr(brace, end - brace + 1);
        entry.synchronizes = synchronizes(body);
        bodies.push_back(Span{brace, end});
        entry_bodies.push_back(body);
        out.entries.push_back(entry);
        at = end;
    }

    // Static shared memory: declarations at module scope count for each entry that names them,
    // declarations inside a body for that entry.
    for (size_t at = text.find(".shared"); at != std::string::npos; at = text.find(".shared", at + 7)) {
        size_t line = text.rfind('\n', at);
        line = line == std::string::npos ? 0 : line + 1;
        bool declaration = true;
        for (size_t i = line; i < at; i++) declaration &= std::isspace((unsigned char)text[i]) != 0;
        if (!declaration) continue;
        size_t semi = text.find(';', at);
        std::vector<std::string> w = words(text.substr(at + 7, semi - at - 7));
        std::string name;
        uint64_t bytes = 0;
        if (!declared_size(w, 0, name, bytes)) continue;  // e.g. `.extern .shared` without a size
        bool inside = false;
        for (size_t e = 0; e < bodies.size(); e++) {
            if (bodies[e].begin < at && at < bodies[e].end) {
                out.entries[e].shared_bytes += bytes;
                inside = true;
            }
        }
        if (!inside)
            for (size_t e = 0; e < entry_bodies.size(); e++)
                if (mentions(entry_bodies[e], name)) out.entries[e].shared_bytes += bytes;
    }
    return "";
}

}  // namespace sim
