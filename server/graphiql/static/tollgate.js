/* Tollgate GraphiQL bootstrap: mounts GraphiQL (UMD build, window.GraphiQL) with a fetcher
 * that adds the bearer token from the header bar, shows each response's cost and lists the
 * registered persisted operations. Loaded as an external script: the page's CSP forbids
 * inline scripts. Plain ES2018, no build step. */
(function () {
  "use strict";

  var TOKEN_KEY = "tollgate.token";
  var ACCEPT = "application/graphql-response+json, application/json";

  var body = document.body;
  var endpoint = body.getAttribute("data-endpoint") || "/graphql";
  var persistedUrl = body.getAttribute("data-persisted-endpoint") || endpoint + "/persisted";

  var tokenInput = document.getElementById("tollgate-token");
  var costBox = document.getElementById("tollgate-cost");
  var persistedBox = document.getElementById("tollgate-persisted");
  var persistedSelect = document.getElementById("tollgate-persisted-select");
  var persistedInfo = document.getElementById("tollgate-persisted-info");
  var mountPoint = document.getElementById("graphiql");
  var prompt = document.getElementById("tollgate-prompt");
  var NO_TOKEN_QUERY =
    "# Paste a token into the Token box above:\n" +
    "# the schema (docs, completion) loads at once.\n" +
    "# scripts/serve prints one per role, or run\n" +
    "#   tollgate token --role staff\n" +
    "{\n  viewer {\n    id\n    name\n  }\n}\n";

  function readToken() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function storeToken(value) {
    try {
      if (value) {
        window.localStorage.setItem(TOKEN_KEY, value);
      } else {
        window.localStorage.removeItem(TOKEN_KEY);
      }
    } catch (e) {
      /* storage disabled (private mode): the token lives only in the input box */
    }
  }

  function currentToken() {
    var raw = (tokenInput.value || "").trim();
    // Accept a pasted "Bearer xyz" as well as the bare token.
    return raw.replace(/^Bearer\s+/i, "");
  }

  function baseHeaders() {
    var headers = { Accept: ACCEPT };
    var token = currentToken();
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    return headers;
  }

  function hasHeader(headers, name) {
    var lower = name.toLowerCase();
    return Object.keys(headers).some(function (key) {
      return key.toLowerCase() === lower;
    });
  }

  function mergeHeaders(base, extra) {
    // Headers typed into GraphiQL's headers editor win over the Token box.
    var merged = {};
    Object.keys(base).forEach(function (key) {
      if (!extra || !hasHeader(extra, key)) {
        merged[key] = base[key];
      }
    });
    if (extra) {
      Object.keys(extra).forEach(function (key) {
        if (extra[key] !== undefined && extra[key] !== null) {
          merged[key] = String(extra[key]);
        }
      });
    }
    return merged;
  }

  function setText(el, text) {
    el.textContent = text;
  }

  function showCost(operationName, result, response, byId) {
    var ext = result && result.extensions;
    var cost = ext && ext.cost;
    var parts = [];
    var label = (operationName || "anonymous operation") + (byId ? " (persisted id)" : "");
    costBox.classList.remove("tollgate-error");
    costBox.setAttribute("data-operation", operationName || "");
    costBox.setAttribute("data-by-id", byId ? "true" : "false");
    if (cost && typeof cost === "object") {
      costBox.setAttribute("data-requested", String(cost.requestedQueryCost));
      costBox.setAttribute("data-actual", String(cost.actualQueryCost));
      parts.push(label + ": cost requested " + fmt(cost.requestedQueryCost));
      parts.push("actual " + fmt(cost.actualQueryCost));
      var t = cost.throttleStatus;
      if (t && typeof t === "object") {
        parts.push(
          "budget " + fmt(t.currentlyAvailable) + "/" + fmt(t.maximumAvailable) +
          " (+" + fmt(t.restoreRate) + "/s)"
        );
      }
    } else {
      costBox.removeAttribute("data-requested");
      costBox.removeAttribute("data-actual");
      parts.push(label + ": no cost reported");
    }
    if (response && response.status === 429) {
      var retry = response.headers.get("Retry-After");
      parts.push("THROTTLED" + (retry ? ", retry after " + retry + " s" : ""));
      costBox.classList.add("tollgate-error");
    }
    setText(costBox, parts.join(" \u00b7 "));
  }

  function fmt(value) {
    if (value === undefined || value === null) {
      return "?";
    }
    if (typeof value === "number" && !Number.isInteger(value)) {
      return value.toFixed(1);
    }
    return String(value);
  }

  // Registered operations by name, for sending an unedited one by id (allowlist mode).
  var persistedByName = {};

  function requestBody(graphQLParams) {
    var op = persistedByName[graphQLParams.operationName || ""];
    var text = typeof graphQLParams.query === "string" ? graphQLParams.query.trim() : "";
    if (op && typeof op.body === "string" && op.body.trim() === text) {
      var byId = { operationName: graphQLParams.operationName, variables: graphQLParams.variables };
      byId.extensions = { persistedQuery: { version: 1, sha256Hash: op.id } };
      return { body: byId, byId: true };
    }
    return { body: graphQLParams, byId: false };
  }

  function operationNameOf(graphQLParams) {
    if (graphQLParams.operationName) {
      return graphQLParams.operationName;
    }
    var match = /(?:^|[\s}])(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/.exec(
      graphQLParams.query || ""
    );
    return match ? match[1] : "";
  }

  function fetcher(graphQLParams, opts) {
    var headers = mergeHeaders(baseHeaders(), opts && opts.headers);
    headers["Content-Type"] = "application/json";
    var request = requestBody(graphQLParams);
    return window
      .fetch(endpoint, {
        method: "POST",
        headers: headers,
        body: JSON.stringify(request.body),
        credentials: "same-origin",
      })
      .then(function (response) {
        return response.text().then(function (text) {
          var result;
          try {
            result = JSON.parse(text);
          } catch (e) {
            result = {
              errors: [{ message: "HTTP " + response.status + ": " + text.slice(0, 500) }],
            };
          }
          var name = operationNameOf(graphQLParams);
          if (name !== "IntrospectionQuery") {
            showCost(name, result, response, request.byId);
          }
          return result;
        });
      });
  }

  function renderPersisted(operations) {
    while (persistedSelect.options.length > 1) {
      persistedSelect.remove(1);
    }
    persistedByName = {};
    (operations || []).forEach(function (op) {
      if (op && op.name && typeof op.id === "string") {
        persistedByName[op.name] = op;
      }
    });
    setText(persistedInfo, "");
    if (!operations || !operations.length) {
      persistedBox.hidden = true;
      return;
    }
    operations.forEach(function (op, index) {
      var option = document.createElement("option");
      option.value = String(index);
      var label = (op.name || "(anonymous)") + " \u2014 cost " + fmt(op.cost);
      if (op.clientName) {
        label += " \u2014 " + op.clientName;
      }
      option.textContent = label;
      persistedSelect.appendChild(option);
    });
    persistedSelect.options[0].textContent = "Persisted operations (" + operations.length + ")";
    persistedBox.hidden = false;
    persistedSelect.onchange = function () {
      var op = operations[Number(persistedSelect.value)];
      if (!op) {
        setText(persistedInfo, "");
        return;
      }
      setText(persistedInfo, "id " + op.id);
      persistedInfo.title = op.id;
      if (typeof op.body === "string" && op.body) {
        render(op.body);
      }
    };
  }

  var persistedSeq = 0;

  function loadPersisted() {
    // Only the latest request (the current token's view) may fill the list.
    var seq = ++persistedSeq;
    window
      .fetch(persistedUrl, { headers: baseHeaders(), credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          return null;
        }
        return response.json();
      })
      .then(function (payload) {
        if (seq === persistedSeq) {
          renderPersisted(payload && Array.isArray(payload.operations) ? payload.operations : []);
        }
      })
      .catch(function () {
        if (seq === persistedSeq) {
          renderPersisted([]);
        }
      });
  }

  var root = window.ReactDOM.createRoot(mountPoint);
  var activeFetcher = fetcher;
  var loadedQuery;

  function render(query) {
    if (query !== undefined) {
      loadedQuery = query;
    }
    var props = {
      fetcher: activeFetcher,
      defaultEditorToolsVisibility: true,
      defaultQuery: NO_TOKEN_QUERY,
    };
    var hasToken = Boolean(currentToken());
    prompt.hidden = hasToken;
    if (!hasToken) {
      // Introspection needs a token: without one, ask for it instead of showing the
      // server's refusal (and a 400 in the console). `schema: null` means "no schema yet".
      props.schema = null;
    }
    if (loadedQuery !== undefined) {
      // GraphiQL copies a changed `query` prop into the editor; an unchanged one is left alone.
      props.query = loadedQuery;
    }
    root.render(window.React.createElement(window.GraphiQL, props));
  }

  tokenInput.value = readToken();
  var appliedToken = currentToken();
  var pending = null;

  function applyToken() {
    pending = null;
    // Only a new token warrants a schema refetch (browsers fire "change" again on blur).
    if (currentToken() === appliedToken) {
      return;
    }
    appliedToken = currentToken();
    storeToken(appliedToken);
    // A new fetcher identity makes GraphiQL fetch the schema again with the new token.
    activeFetcher = function (params, opts) {
      return fetcher(params, opts);
    };
    render();
    loadPersisted();
  }

  // As soon as a token is pasted or typed (debounced), and on "change" (Enter, blur).
  tokenInput.addEventListener("input", function () {
    if (pending !== null) {
      window.clearTimeout(pending);
    }
    pending = window.setTimeout(applyToken, 250);
  });
  tokenInput.addEventListener("change", applyToken);

  render();
  loadPersisted();
})();
