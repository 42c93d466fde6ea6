// The layer builder of the start form (model=layers): pick a layer kind, fill its arguments,
// add it; reorder or remove layers. The list is kept as JSON in the hidden field model.layers,
// which the server turns into a Hydra override and checks as POST /runs does. Nothing here is
// trusted: a value this script writes is only a proposal the server's validator accepts or refuses.
(function () {
  "use strict";

  // An argument's text as a JSON value: integers, numbers, true/false, lists (3,3 or [3,3]),
  // else the text itself (auto, num_labels, vocab_size, mean, ...).
  function parseValue(text) {
    var t = text.trim();
    if (t.charAt(0) === "[" && t.charAt(t.length - 1) === "]") t = t.slice(1, -1);
    if (t.indexOf(",") >= 0) {
      return t.split(",").map(function (part) { return parseValue(part); });
    }
    if (/^[-+]?\d+$/.test(t)) return parseInt(t, 10);
    if (/^[-+]?(\d+\.\d*|\.\d+|\d+)(e[-+]?\d+)?$/i.test(t)) return parseFloat(t);
    if (t === "true") return true;
    if (t === "false") return false;
    return t;
  }

  function specText(spec) {
    var args = Object.keys(spec).filter(function (k) { return k !== "name"; }).map(function (k) {
      var v = spec[k];
      return k + "=" + (typeof v === "string" ? v : JSON.stringify(v));
    });
    return spec.name + "(" + args.join(", ") + ")";
  }

  function button(cls, text, title) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = cls + " secondary";
    b.textContent = text;
    b.title = title;
    return b;
  }

  function item(spec) {
    var li = document.createElement("li");
    li.setAttribute("data-spec", JSON.stringify(spec));
    var code = document.createElement("code");
    code.className = "spec";
    code.textContent = typeof spec === "object" && spec !== null && spec.name ? specText(spec) : JSON.stringify(spec);
    li.appendChild(code);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(button("up", "\u2191", "move up"));
    li.appendChild(button("down", "\u2193", "move down"));
    li.appendChild(button("remove", "\u2715", "remove"));
    return li;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var builder = document.getElementById("layer-builder");
    if (!builder) return;
    var list = document.getElementById("layers");
    var hidden = document.getElementById("field-model-layers");
    var kind = document.getElementById("layer-kind");
    var model = document.getElementById("field-model");
    var lists = JSON.parse(builder.getAttribute("data-lists") || "{}");

    function sync() {
      var specs = Array.prototype.map.call(list.children, function (li) {
        return JSON.parse(li.getAttribute("data-spec"));
      });
      hidden.value = JSON.stringify(specs);
    }

    function fill(specs) {
      list.textContent = "";
      specs.forEach(function (spec) { list.appendChild(item(spec)); });
      sync();
    }

    function showArgs() {
      builder.querySelectorAll(".layer-args").forEach(function (span) {
        span.hidden = span.getAttribute("data-kind") !== kind.value;
      });
    }

    kind.addEventListener("change", showArgs);
    showArgs();

    document.getElementById("add-layer").addEventListener("click", function () {
      var spec = {name: kind.value};
      var span = builder.querySelector('.layer-args[data-kind="' + kind.value + '"]');
      if (span) {
        span.querySelectorAll("input[data-arg]").forEach(function (input) {
          if (input.value.trim() !== "") spec[input.getAttribute("data-arg")] = parseValue(input.value);
        });
      }
      list.appendChild(item(spec));
      sync();
    });

    list.addEventListener("click", function (event) {
      var target = event.target;
      if (!(target instanceof HTMLButtonElement)) return;
      var li = target.closest("li");
      if (!li) return;
      if (target.classList.contains("remove")) {
        li.remove();
      } else if (target.classList.contains("up") && li.previousElementSibling) {
        list.insertBefore(li, li.previousElementSibling);
      } else if (target.classList.contains("down") && li.nextElementSibling) {
        list.insertBefore(li.nextElementSibling, li);
      }
      sync();
    });

    // The builder belongs to the layer models; choosing one starts from its own list.
    if (model) {
      var layerModels = (model.getAttribute("data-layer-models") || "").split(" ");
      model.addEventListener("change", function () {
        var isLayers = layerModels.indexOf(model.value) >= 0;
        builder.hidden = !isLayers;
        if (isLayers && lists[model.value]) fill(lists[model.value]);
      });
    }
  });
})();
